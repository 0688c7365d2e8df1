"""Schemathesis against `responder serve` on a free port: every endpoint of /openapi.json,
with generated valid and invalid input, answers only as documented.

The server is real (uvicorn, the writer and the worker running) on a database that already
holds incidents, action runs and audit entries, so the record schemas are checked against
real rows. Checks: no 5xx, documented status codes, content types, headers and bodies,
invalid input refused with a 4xx, and auth enforced (each call carries the right token, and
schemathesis repeats a successful one without it and with a wrong one, expecting 401).
"""

from __future__ import annotations

import socket
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
import schemathesis
import sqlalchemy as sa
import uvicorn
from hypothesis import given
from schemathesis.checks import not_a_server_error
from schemathesis.config import SchemathesisConfig
from schemathesis.core.result import Ok
from schemathesis.generation.case import Case
from schemathesis.generation.modes import GenerationMode
from schemathesis.schemas import APIOperation
from schemathesis.specs.openapi.checks import (
    content_type_conformance,
    ignored_auth,
    negative_data_rejection,
    response_headers_conformance,
    response_schema_conformance,
    status_code_conformance,
)

from responder.main import Service, build_service
from responder.store.migrate import upgrade
from responder.web.openapi import document
from tests.databases import BACKENDS, restore
from tests.fuzzing import budget
from tests.harness import API_TOKEN, TOKEN, drain, post, running, sample, settings_for

# What the database holds before schemathesis starts: incidents open and resolved, runs.
HISTORY = [
    "payment-failure-rate.triggered",
    "api-latency.warn",
    "fraud-detection-down.triggered",
    "fraud-detection-down.renotify",
    "payment-failure-rate.recovered",
]
CHECKS = [
    not_a_server_error,
    status_code_conformance,
    content_type_conformance,
    response_headers_conformance,
    response_schema_conformance,
    negative_data_rejection,
    ignored_auth,
]
Operation = APIOperation[Any, Any, Any, Any]
# Invalid input may also be refused as too large (413), which a schema cannot express.
REFUSALS = ["400", "401", "404", "405", "413", "415", "422"]
# Tokens are ours to send (below), not generated: a negative case is then about the input.
CONFIG = SchemathesisConfig.from_dict(
    {
        "generation": {"with-security-parameters": False},
        "checks": {"negative_data_rejection": {"expected-statuses": REFUSALS}},
    }
)


@dataclass(frozen=True, slots=True)
class Live:
    base_url: str
    service: Service


def _free_socket() -> socket.socket:
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.bind(("127.0.0.1", 0))
    return sock


@pytest.fixture(params=BACKENDS)
def live(request: pytest.FixtureRequest, samples_dir: Path) -> Iterator[Live]:
    def build(url: str) -> None:
        with running(settings_for(url)) as (service, client):
            for name in HISTORY:
                assert post(client, sample(samples_dir, name)).status_code == 202
                drain(service)

    url = restore(request, request.param, "conformance", build)
    service = build_service(settings_for(url))
    upgrade(service.engine)
    sock = _free_socket()
    config = uvicorn.Config(service.app, loop="asyncio", log_level="warning", lifespan="on")
    server = uvicorn.Server(config)
    thread = threading.Thread(target=server.run, kwargs={"sockets": [sock]}, daemon=True)
    thread.start()
    deadline = time.monotonic() + 10
    while not server.started:
        assert thread.is_alive() and time.monotonic() < deadline, "uvicorn did not start"
        time.sleep(0.02)
    host, port = sock.getsockname()
    try:
        yield Live(f"http://{host}:{port}", service)
    finally:
        server.should_exit = True
        thread.join(timeout=15)
        sock.close()
        service.engine.dispose()
    assert not thread.is_alive(), "uvicorn did not stop"


def credentials(case: Case[Operation]) -> dict[str, str]:
    if case.operation.path.startswith("/api/"):
        return {"Authorization": f"Bearer {API_TOKEN}"}
    if case.operation.path.startswith("/webhooks/"):
        return {"X-Responder-Token": TOKEN}
    return {}


def described(operation: Operation) -> dict[str, Any]:
    found: dict[str, Any] = document()["paths"][operation.path][operation.method.lower()]
    return found


def load(live: Live) -> list[Operation]:
    # Loaded from the server itself: the document under test is the one it serves.
    schema = schemathesis.openapi.from_url(f"{live.base_url}/openapi.json", config=CONFIG)
    operations = []
    for result in schema.get_all_operations():
        assert isinstance(result, Ok), result
        operations.append(result.ok())
    return operations


def stored_events(live: Live) -> int:
    with live.service.engine.connect() as conn:
        return int(conn.execute(sa.text("SELECT count(*) FROM alert_event")).scalar_one())


def fuzz(operation: Operation, mode: GenerationMode) -> None:
    @given(case=operation.as_strategy(generation_mode=mode))
    @budget(0.5, deadline=None, database=None)
    def calls(case: Case[Operation]) -> None:
        case.call_and_validate(headers=credentials(case), checks=CHECKS, timeout=20)

    calls()


def test_every_answer_is_documented(live: Live) -> None:
    operations = load(live)
    # Schemathesis leaves out the document's own path; loading it above is its test.
    assert {op.label for op in operations} | {"GET /openapi.json"} == {
        f"{method.upper()} {path}"
        for path, methods in document()["paths"].items()
        for method in methods
    }
    for operation in operations:
        fuzz(operation, GenerationMode.POSITIVE)
        operation_doc = described(operation)
        if operation_doc.get("parameters") or "requestBody" in operation_doc:
            fuzz(operation, GenerationMode.NEGATIVE)  # else there is nothing to get wrong


def test_stored_records_match_their_schemas(live: Live) -> None:
    # Generated ids rarely name a stored incident; every stored one is checked here.
    by_label = {op.label: op for op in load(live)}
    detail = by_label["GET /api/incidents/{incident_id}"]
    listing = by_label["GET /api/incidents"]
    page = listing.Case(query={"limit": "500"})
    items = page.call_and_validate(headers=credentials(page), checks=CHECKS).json()["items"]
    assert len(items) >= 2
    for item in items:
        case = detail.Case(path_parameters={"incident_id": item["id"]})
        response = case.call_and_validate(headers=credentials(case), checks=CHECKS)
        assert response.status_code == 200
        assert response.json()["timeline"], item["id"]
    for label in ("GET /api/audit", "GET /api/stats"):
        case = by_label[label].Case()
        assert case.call_and_validate(headers=credentials(case), checks=CHECKS).status_code == 200


WRONG = {
    "none": {},
    "wrong header": {"X-Responder-Token": "nope"},
    "wrong bearer": {"Authorization": "Bearer nope"},
    "swapped": {"Authorization": f"Bearer {TOKEN}", "X-Responder-Token": API_TOKEN},
}


def test_without_the_right_token_every_secured_call_gets_the_documented_401(live: Live) -> None:
    before = stored_events(live)
    secured = [op for op in load(live) if described(op)["security"]]
    assert {op.path for op in secured} >= {"/webhooks/datadog", "/api/incidents"}
    for operation in secured:

        @given(case=operation.as_strategy(generation_mode=GenerationMode.POSITIVE))
        @budget(0.05, deadline=None, database=None)
        def refused(case: Case[Operation]) -> None:
            for headers in WRONG.values():
                response = case.call(headers=headers, timeout=20)
                assert response.status_code == 401, (case.operation.label, headers)
                case.validate_response(response, checks=CHECKS)

        refused()
    assert stored_events(live) == before, "a refused delivery was stored"
