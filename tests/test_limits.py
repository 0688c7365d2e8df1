"""Bodies too deep or too large get a clear 4xx, never a 500 or a recursion error, and
nothing of them is stored: the webhook (JSON and form), and `playbooks test`'s files."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from sqlmodel import Session, select
from starlette.testclient import TestClient
from typer.testing import CliRunner

from responder.cli import app as cli
from responder.intake.datadog import PayloadError, decode
from responder.intake.limits import MAX_DEPTH, too_deep
from responder.main import Service
from responder.store.tables import AlertEvent
from tests.harness import REPO, TOKEN, running, sample, settings_for
from tests.logstate import logging_kept

LIMIT = 32 * 1024  # RESPONDER_MAX_BODY_BYTES here: room for 10,000 nested arrays


@pytest.fixture
def app(migrated_url: str) -> Iterator[tuple[Service, TestClient]]:
    settings = settings_for(migrated_url, RESPONDER_MAX_BODY_BYTES=str(LIMIT))
    with running(settings) as pair:
        yield pair


@pytest.fixture
def _logging_kept() -> Iterator[None]:
    with logging_kept():
        yield


def stored(service: Service) -> int:
    with Session(service.engine) as session:
        return len(session.exec(select(AlertEvent)).all())


def nested(depth: int) -> Any:
    """`depth` levels of arrays around an empty one, built without recursion."""
    value: Any = []
    for _ in range(depth - 1):
        value = [value]
    return value


def with_extra(samples_dir: Path, extra: Any) -> dict[str, Any]:
    """A valid alert that also carries `extra` (a hand-made template may add any field)."""
    return {**sample(samples_dir, "api-latency.triggered"), "extra": extra}


def deliver(client: TestClient, body: bytes, content_type: str = "application/json") -> Any:
    headers = {"X-Responder-Token": TOKEN, "Content-Type": content_type}
    return client.post("/webhooks/datadog", content=body, headers=headers)


def assert_refused(response: Any, status: int, words: str) -> None:
    assert response.status_code == status, response.text
    assert words in response.json()["error"], response.json()


def deep_body(samples_dir: Path, depth: int) -> bytes:
    """A valid alert whose `extra` field is `depth` nested arrays (written as bytes: no
    encoder recurses that far)."""
    body = json.dumps(with_extra(samples_dir, "DEEP")).encode()
    return body.replace(b'"DEEP"', b"[" * depth + b"]" * depth)


# Past the limit each time (the object around them is one more level). Between 255 and
# 1024 levels orjson parses but cannot write back; past 1024 it refuses to parse.
@pytest.mark.parametrize("depth", [MAX_DEPTH, 300, 1023, 10_000])
def test_json_nested_too_deep_is_400_and_nothing_is_stored(
    app: tuple[Service, TestClient], samples_dir: Path, depth: int
) -> None:
    service, client = app
    response = deliver(client, deep_body(samples_dir, depth))
    assert_refused(response, 400, "nested deeper than")
    assert stored(service) == 0


def test_json_at_the_depth_limit_is_accepted(
    app: tuple[Service, TestClient], samples_dir: Path
) -> None:
    service, client = app
    response = deliver(client, deep_body(samples_dir, MAX_DEPTH - 1))
    assert response.status_code == 202, response.text
    assert stored(service) == 1


def test_a_form_whose_json_field_nests_too_deep_is_400_not_500(
    app: tuple[Service, TestClient], samples_dir: Path
) -> None:
    """A form's `alert` field is JSON text, parsed and then dumped to be stored: at 300
    levels the dump used to raise (orjson writes at most 254) and the answer was a 500."""
    service, client = app
    data = sample(samples_dir, "checkout-error-rate.triggered")
    data["alert"]["extra"] = nested(300)
    form = {k: json.dumps(v) if isinstance(v, dict) else v for k, v in data.items()}
    response = client.post("/webhooks/datadog", data=form, headers={"X-Responder-Token": TOKEN})
    assert_refused(response, 400, "nested deeper than")
    assert stored(service) == 0


def test_a_body_over_the_limit_is_413_with_or_without_a_declared_length(
    app: tuple[Service, TestClient], samples_dir: Path
) -> None:
    service, client = app
    body = json.dumps(with_extra(samples_dir, "x" * LIMIT)).encode()
    declared = deliver(client, body)
    assert_refused(declared, 413, f"larger than {LIMIT} bytes")

    def chunks() -> Iterator[bytes]:  # chunked: no Content-Length to judge it by
        for start in range(0, len(body), 512):
            yield body[start : start + 512]

    streamed = client.post(
        "/webhooks/datadog",
        content=chunks(),
        headers={"X-Responder-Token": TOKEN, "Content-Type": "application/json"},
    )
    assert "content-length" not in {k.lower() for k in streamed.request.headers}
    assert_refused(streamed, 413, f"larger than {LIMIT} bytes")
    form = client.post(
        "/webhooks/datadog", data={"title": "x" * LIMIT}, headers={"X-Responder-Token": TOKEN}
    )
    assert_refused(form, 413, "larger than")
    assert stored(service) == 0


def test_only_the_webhook_reads_a_body(app: tuple[Service, TestClient]) -> None:
    """Every other route is GET: a body sent to one is never read, whatever its size."""
    _, client = app
    for path in ("/api/incidents", "/api/audit", "/api/stats", "/healthz", "/readyz", "/metrics"):
        response = client.post(path, content=b"[" * 100_000)
        assert response.status_code == 405, (path, response.status_code)


def test_too_deep_walks_without_recursion() -> None:
    assert not too_deep({"a": [1, {"b": nested(MAX_DEPTH - 3)}]})  # 3 + 29 levels
    assert too_deep({"a": [1, {"b": nested(MAX_DEPTH - 2)}]})
    assert too_deep(nested(100_000))  # far past Python's recursion limit
    assert not too_deep("[[[[")
    with pytest.raises(PayloadError, match="nested deeper than"):
        decode(b'{"a": ' * 50 + b"1" + b"}" * 50, "application/json")


@pytest.mark.usefixtures("_logging_kept")
def test_playbooks_test_names_a_file_nested_too_deep(tmp_path: Path) -> None:
    deep = tmp_path / "deep.json"
    deep.write_bytes(b'{"title": "[Triggered] x", "extra": ' + b"[" * 5000 + b"]" * 5000 + b"}")
    result = CliRunner().invoke(
        cli,
        ["playbooks", "test", str(deep)],
        env={
            "DATABASE_URL": f"sqlite:///{tmp_path}/never.db",
            "RESPONDER_PLAYBOOKS": str(REPO / "playbooks"),
            "RESPONDER_LOG_LEVEL": "warning",
        },
    )
    assert result.exit_code == 1, result.output
    assert f"{deep}: unreadable body: JSON nested deeper than {MAX_DEPTH}" in result.output
    assert not isinstance(result.exception, RecursionError)
