"""POST /webhooks/datadog: authentication, the bad-input table, templates, redelivery."""

from __future__ import annotations

import base64
import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import sqlalchemy as sa
from sqlmodel import Session, select
from starlette.testclient import TestClient

from responder.intake.datadog import decode, normalise
from responder.main import Service, build_service
from responder.pipeline.alerts import stored_alert
from responder.store import events
from responder.store.tables import AlertEvent
from tests.harness import TOKEN, post, running, sample, settings_for


@pytest.fixture
def app(migrated_url: str, tmp_path: Path) -> Iterator[tuple[Service, TestClient]]:
    with running(settings_for(migrated_url)) as pair:
        yield pair


def stored_count(service: Service) -> int:
    with Session(service.engine) as session:
        return len(session.exec(select(AlertEvent)).all())


def test_accepts_our_template_and_stores_before_acking(
    app: tuple[Service, TestClient], samples_dir: Path
) -> None:
    service, client = app
    response = post(client, sample(samples_dir, "payment-failure-rate.triggered"))
    assert response.status_code == 202, response.text
    body = response.json()
    assert set(body) >= {"event_id", "incident_id", "playbooks", "actions"}
    with Session(service.engine) as session:
        event = session.get(AlertEvent, body["event_id"])
        assert event is not None
        assert event.transition == "Triggered"
        assert event.priority == "P1"
        assert event.monitor_id == "148275309"
        assert event.state == "received"


@pytest.mark.parametrize(
    "headers",
    [
        {"X-Responder-Token": TOKEN},
        {"X-Responder-Token": "old-token-0"},  # a second token, as during a rotation
        {"Authorization": f"Bearer {TOKEN}"},
        {"Authorization": "Basic " + base64.b64encode(f"datadog:{TOKEN}".encode()).decode()},
    ],
    ids=["header", "rotation", "bearer", "basic"],
)
def test_three_ways_to_pass_the_token(
    app: tuple[Service, TestClient], samples_dir: Path, headers: dict[str, str]
) -> None:
    _, client = app
    body = sample(samples_dir, "api-latency.warn")
    response = client.post("/webhooks/datadog", json=body, headers=headers)
    assert response.status_code == 202, response.text


def test_redelivery_is_recognised_and_not_stored_twice(
    app: tuple[Service, TestClient], samples_dir: Path
) -> None:
    service, client = app
    body = sample(samples_dir, "fraud-detection-down.triggered")
    first = post(client, body)
    second = post(client, body)
    assert first.status_code == 202
    assert second.status_code == 200
    assert second.json()["event_id"] == first.json()["event_id"]
    assert second.json()["duplicate"] is True
    with Session(service.engine) as session:
        events = session.exec(select(AlertEvent)).all()
        assert len(events) == 1
        assert events[0].deliveries == 2


@pytest.mark.parametrize(
    "name",
    [
        "payment-failure-rate.triggered",
        "default-template.payment-failure-rate.triggered",
        "api-latency.warn",
    ],
)
def test_the_worker_reads_the_alert_intake_normalised(
    app: tuple[Service, TestClient], samples_dir: Path, name: str
) -> None:
    # The webhook keeps the payload alone (the alert's JSON beside it doubled what each
    # commit writes); the worker normalises it again and must get what intake validated.
    service, client = app
    body = sample(samples_dir, name)
    response = post(client, body)
    assert response.status_code == 202, response.text
    event_id = response.json()["event_id"]
    with service.engine.connect() as conn:
        stored = events.alerts_of(conn, ids=[event_id])[event_id]
    assert stored.alert is None
    data, _ = decode(json.dumps(body).encode(), "application/json")
    assert stored_alert(stored) == normalise(data, stored.received_at)
    assert stored_alert(stored).notes == tuple(response.json().get("notes", ()))


def test_default_template_is_accepted_and_marked_minimal(
    app: tuple[Service, TestClient], samples_dir: Path
) -> None:
    service, client = app
    response = post(client, sample(samples_dir, "default-template.payment-failure-rate.triggered"))
    assert response.status_code == 202, response.text
    assert any("minimal payload" in note for note in response.json()["notes"])
    with Session(service.engine) as session:
        event = session.get(AlertEvent, response.json()["event_id"])
        assert event is not None and event.template == "default"
        assert event.transition == "Triggered"


def test_form_encoded_payload_is_accepted(
    app: tuple[Service, TestClient], samples_dir: Path
) -> None:
    _, client = app
    data = sample(samples_dir, "checkout-error-rate.triggered")
    form = {k: json.dumps(v) if isinstance(v, dict) else v for k, v in data.items()}
    response = client.post("/webhooks/datadog", data=form, headers={"X-Responder-Token": TOKEN})
    assert response.status_code == 202, response.text


def _base(samples_dir: Path) -> dict[str, Any]:
    return sample(samples_dir, "api-latency.triggered")


def _with(samples_dir: Path, path: str, value: Any) -> dict[str, Any]:
    data = _base(samples_dir)
    target = data
    *parents, last = path.split(".")
    for key in parents:
        target = target[key]
    if value is _DELETE:
        del target[last]
    else:
        target[last] = value
    return data


_DELETE = object()

# (id, headers, body builder, expected status, expected words in the error, stored?)
BAD_INPUT: list[tuple[str, dict[str, str] | None, Any, int, str, bool]] = [
    ("no token", {}, _base, 401, "token", False),
    ("wrong token", {"X-Responder-Token": "nope"}, _base, 401, "token", False),
    ("empty bearer", {"Authorization": "Bearer "}, _base, 401, "token", False),
    ("bad basic", {"Authorization": "Basic !!!"}, _base, 401, "token", False),
    ("empty body", None, lambda s: b"", 400, "empty", False),
    ("not json", None, lambda s: b"{not json", 400, "not valid JSON", False),
    ("json array", None, lambda s: b"[1, 2]", 422, "JSON object", False),
    ("json string", None, lambda s: b'"hello"', 422, "JSON object", False),
    ("huge body", None, lambda s: b'{"a": "' + b"x" * 300_000 + b'"}', 413, "larger", False),
    (
        "no title",
        None,
        lambda s: (
            {k: v for k, v in _base(s).items() if k != "event_title"}
            | {"alert": {**_base(s)["alert"], "title": ""}}
        ),
        422,
        "title",
        False,
    ),
    ("alert not object", None, lambda s: _with(s, "alert", "oops"), 422, "'alert'", False),
    (
        "title a number list",
        None,
        lambda s: _with(s, "alert.title", [1]),
        422,
        "alert.title",
        False,
    ),
    ("tags wrong type", None, lambda s: _with(s, "tags", {"a": 1}), 422, "tags", False),
    ("bool priority", None, lambda s: _with(s, "alert.priority", True), 422, "priority", False),
    (
        "unknown transition",
        None,
        lambda s: (
            _with(s, "alert.transition", "Exploded")
            | {
                "alert": {
                    **_with(s, "alert.transition", "Exploded")["alert"],
                    "type": "",
                    "title": "x",
                }
            }
        ),
        422,
        "transition",
        False,
    ),
    ("invalid utf8", None, lambda s: b'{"title": "\xff\xfe"}', 400, "JSON", False),
    (
        "unicode and control characters",
        None,
        lambda s: _with(
            s, "alert.title", "[Triggered] Zahlungsfehler \u00fcber 5% \u2014 \u65e5\u672c\x00\x07"
        ),
        202,
        "",
        True,
    ),
    (
        "jinja and slack markup in title",
        None,
        lambda s: _with(s, "alert.title", "[Triggered] {{ 7*7 }} <!channel> {% raw %}"),
        202,
        "",
        True,
    ),
    ("numbers for ids", None, lambda s: _with(s, "alert.id", 148275400), 202, "", True),
    (
        "literal variables",
        None,
        lambda s: _with(s, "alert.cycle_key", "$ALERT_CYCLE_KEY"),
        202,
        "",
        True,
    ),
]


@pytest.mark.parametrize(
    ("headers", "build", "status", "words", "stored"),
    [case[1:] for case in BAD_INPUT],
    ids=[case[0] for case in BAD_INPUT],
)
def test_bad_input_table(
    app: tuple[Service, TestClient],
    samples_dir: Path,
    headers: dict[str, str] | None,
    build: Any,
    status: int,
    words: str,
    stored: bool,
) -> None:
    service, client = app
    body = build(samples_dir)
    hdrs = {"X-Responder-Token": TOKEN} if headers is None else headers
    if isinstance(body, bytes):
        response = client.post(
            "/webhooks/datadog", content=body, headers={**hdrs, "Content-Type": "application/json"}
        )
    else:
        response = client.post("/webhooks/datadog", json=body, headers=hdrs)
    assert response.status_code == status, response.text
    assert response.status_code != 500
    if words:
        assert words.lower() in response.json()["error"].lower()
    assert stored_count(service) == (1 if stored else 0)


def test_title_with_control_characters_is_stored_clean(
    app: tuple[Service, TestClient], samples_dir: Path
) -> None:
    service, client = app
    body = _with(samples_dir, "alert.title", "[Triggered] A\x00B\x1bC")
    response = post(client, body)
    assert response.status_code == 202
    with Session(service.engine) as session:
        event = session.get(AlertEvent, response.json()["event_id"])
        assert event is not None and event.title == "[Triggered] ABC"


def test_database_down_answers_503_never_500(
    app: tuple[Service, TestClient], samples_dir: Path
) -> None:
    service, client = app
    with service.engine.begin() as conn:
        conn.execute(sa.text("DROP TABLE alert_event"))  # as broken as a database gets
    response = post(client, _base(samples_dir))
    assert response.status_code == 503
    assert response.headers["retry-after"]
    assert "deliver again" in response.json()["error"]


def test_unreachable_postgres_answers_503(samples_dir: Path) -> None:
    # Nothing listens on port 9: every connection is refused, as with a database that is down.
    settings = settings_for("postgresql+psycopg://postgres@127.0.0.1:9/none")
    service = build_service(settings)
    service.worker_thread = False
    with TestClient(service.app) as client:
        response = post(client, _base(samples_dir))
    assert response.status_code == 503
    assert response.headers["retry-after"] == "5"
    assert "deliver again" in response.json()["error"]
    service.engine.dispose()
