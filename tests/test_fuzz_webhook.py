"""Property tests of the webhook: mutated and arbitrary deliveries, as JSON and as a form.

Whatever arrives, the answer is a stored event (202, or 200 for a redelivery) or a 4xx whose
body names the problem; never a 5xx or an exception. Every acknowledged event is in the
database when acknowledged and is processed by the pipeline afterwards; nothing refused is
stored.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any
from urllib.parse import urlencode

import orjson
import pytest
import sqlalchemy as sa
from hypothesis import given
from hypothesis import strategies as st
from starlette.testclient import TestClient

from responder.domain import alert_to_json
from responder.intake.datadog import PayloadError, decode, normalise
from responder.main import Service
from responder.store.intake import event_row
from tests.fuzzing import JSON, TEXT, budget
from tests.harness import TOKEN, drain, running, settings_for
from tests.samples import SAMPLES

BOTH_TEMPLATES = [json.loads(path.read_text()) for path in sorted(SAMPLES.glob("*.json"))]
assert any("alert" in s for s in BOTH_TEMPLATES) and any("alert" not in s for s in BOTH_TEMPLATES)
# Keys intake reads, whether or not the sample has them: mutations reach every reader.
TOP_KEYS = sorted(
    {key for s in BOTH_TEMPLATES for key in s}
    | {"title", "body", "text_only_msg", "alert_title", "alert_transition", "alert_priority"}
    | {"alert_id", "aggreg_key", "tags", "org", "alert", "date", "last_updated"}
)
ALERT_KEYS = sorted({key for s in BOTH_TEMPLATES for key in s.get("alert", {})})
FORM = "application/x-www-form-urlencoded"

Mutation = tuple[tuple[str, ...], Any]
_DELETE = object()


def mutations(values: st.SearchStrategy[Any]) -> st.SearchStrategy[list[Mutation]]:
    where = st.one_of(
        st.tuples(st.sampled_from(TOP_KEYS)),
        st.tuples(st.just("alert"), st.sampled_from(ALERT_KEYS)),
        st.tuples(st.just("org"), st.sampled_from(["id", "name"])),
        st.tuples(st.text(max_size=8)),
    )
    return st.lists(st.tuples(where, st.one_of(values, st.just(_DELETE))), max_size=4)


def mutated(sample: dict[str, Any], changes: list[Mutation]) -> dict[str, Any]:
    data: dict[str, Any] = json.loads(json.dumps(sample))
    for path, value in changes:
        target = data
        for key in path[:-1]:
            if not isinstance(target.get(key), dict):
                target[key] = {}
            target = target[key]
        if value is _DELETE:
            target.pop(path[-1], None)
        else:
            target[path[-1]] = value
    return data


def as_json(data: Any) -> bytes:
    return json.dumps(data, ensure_ascii=False).encode()  # stdlib: integers of any size


def as_form(data: dict[str, Any]) -> bytes:
    # Datadog's "encode as form": nested objects travel as JSON text, as the README says.
    fields = {
        key: value if isinstance(value, str) else json.dumps(value) for key, value in data.items()
    }
    return urlencode(fields).encode()


PAYLOADS = st.builds(mutated, st.sampled_from(BOTH_TEMPLATES), mutations(JSON))
DELIVERIES = st.one_of(
    PAYLOADS.map(lambda data: (as_json(data), "application/json")),
    PAYLOADS.map(lambda data: (as_form(data), FORM)),
    st.tuples(JSON.map(as_json), st.just("application/json")),
    st.tuples(
        st.binary(max_size=300),
        st.sampled_from(["application/json", FORM, "text/plain", ""]),
    ),
)


@given(delivery=DELIVERIES)
@budget(3)
def test_intake_either_makes_an_alert_or_names_the_problem(delivery: tuple[bytes, str]) -> None:
    body, content_type = delivery
    received = datetime.now(UTC)
    try:
        data, payload = decode(body, content_type)
        alert = normalise(data, received)
    except PayloadError as exc:
        assert str(exc)
        return
    row = event_row(alert, body, payload, received, part=0)
    assert row["title"] == alert.title and alert.title
    assert orjson.loads(alert_to_json(alert))["title"] == alert.title
    assert orjson.loads(payload) is not None or payload == "null"


STRING_VALUES = mutations(TEXT)


@given(sample=st.sampled_from(BOTH_TEMPLATES), changes=STRING_VALUES)
@budget(2)
def test_a_form_says_what_the_same_json_says(
    sample: dict[str, Any], changes: list[Mutation]
) -> None:
    data = mutated(sample, changes)
    if any(isinstance(data.get(key), str) for key in ("alert", "org")):
        return  # JSON text in a form field is how a form nests; in JSON it is just text
    received = datetime.now(UTC)
    outcomes: list[object] = []
    for body, content_type in ((as_json(data), "application/json"), (as_form(data), FORM)):
        try:
            outcomes.append(normalise(decode(body, content_type)[0], received))
        except PayloadError as exc:
            outcomes.append(str(exc))
    assert outcomes[0] == outcomes[1]


@pytest.fixture
def app(migrated_url: str) -> Iterator[tuple[Service, TestClient]]:
    with running(settings_for(migrated_url)) as pair:
        yield pair


def event_count(service: Service) -> int:
    with service.engine.connect() as conn:
        return int(conn.execute(sa.text("SELECT count(*) FROM alert_event")).scalar_one())


def test_every_delivery_is_stored_and_acknowledged_or_refused_with_a_reason(
    app: tuple[Service, TestClient], tmp_path: Path
) -> None:
    service, client = app
    acknowledged: set[int] = set()

    @given(delivery=DELIVERIES)
    @budget(1, deadline=None)
    def deliver(delivery: tuple[bytes, str]) -> None:
        body, content_type = delivery
        before = event_count(service)
        headers = {"X-Responder-Token": TOKEN, "Content-Type": content_type}
        response = client.post("/webhooks/datadog", content=body, headers=headers)
        status = response.status_code
        answer = response.json()
        assert response.headers["content-type"] == "application/json"
        if status in (200, 202):
            acknowledged.add(answer["event_id"])
            assert answer.get("duplicate", False) is (status == 200)
            assert event_count(service) == before + (status == 202)
            with service.engine.connect() as conn:
                stored = conn.execute(
                    sa.text("SELECT count(*) FROM alert_event WHERE id = :id"),
                    {"id": answer["event_id"]},
                ).scalar_one()
            assert stored == 1
        else:
            assert status in (400, 413, 422), (status, answer)
            assert isinstance(answer["error"], str) and answer["error"]
            assert event_count(service) == before

    deliver()
    assert acknowledged, "no delivery was accepted: the strategies test nothing but refusals"
    drain(service)
    with service.engine.connect() as conn:
        states: dict[int, str] = {
            event: state
            for event, state in conn.execute(sa.text("SELECT id, state FROM alert_event"))
        }
    assert acknowledged <= set(states)
    unfinished = {event: states[event] for event in acknowledged if states[event] != "processed"}
    assert unfinished == {}, "acknowledged events the pipeline did not process"
