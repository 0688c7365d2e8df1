"""`/healthz`, `/readyz` (database reachable, schema current) and the Prometheus `/metrics`."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
import sqlalchemy as sa
from prometheus_client.parser import text_string_to_metric_families
from starlette.testclient import TestClient

from responder.main import Service, build_service
from responder.metrics import Metrics
from responder.store.migrate import schema_state
from tests.harness import drain, post, running, sample, settings_for

UNREACHABLE = "postgresql+psycopg://postgres@127.0.0.1:1/nothing"  # nothing listens on port 1


@pytest.fixture
def app(migrated_url: str) -> Iterator[tuple[Service, TestClient]]:
    with running(settings_for(migrated_url)) as pair:
        yield pair


def samples(client: TestClient, name: str) -> dict[tuple[tuple[str, str], ...], float]:
    """Every sample called `name` on /metrics, keyed by its sorted labels."""
    response = client.get("/metrics")
    assert response.status_code == 200
    found: dict[tuple[tuple[str, str], ...], float] = {}
    for family in text_string_to_metric_families(response.text):
        for sample_ in family.samples:
            if sample_.name == name:
                found[tuple(sorted(sample_.labels.items()))] = sample_.value
    return found


def test_healthz_answers_while_the_process_is_up(app: tuple[Service, TestClient]) -> None:
    _, client = app
    response = client.get("/healthz")
    assert response.status_code == 200
    assert response.json() == {"status": "ok"}


def test_readyz_on_a_migrated_database(app: tuple[Service, TestClient]) -> None:
    _, client = app
    response = client.get("/readyz")
    assert response.status_code == 200
    assert response.json() == {"status": "ready"}


def test_readyz_without_a_schema_version_names_the_upgrade_and_recovers(
    app: tuple[Service, TestClient],
) -> None:
    service, client = app
    current, _ = schema_state(service.engine)
    with service.engine.begin() as conn:
        conn.execute(sa.text("DELETE FROM alembic_version"))
    response = client.get("/readyz")
    assert response.status_code == 503
    body = response.json()
    assert body["status"] == "unavailable"
    assert "responder db upgrade" in body["reason"]
    # Readiness is checked on every request: putting the version back makes it ready again.
    with service.engine.begin() as conn:
        conn.execute(
            sa.text("INSERT INTO alembic_version (version_num) VALUES (:v)"), {"v": current}
        )
    assert client.get("/readyz").status_code == 200


def test_readyz_with_the_tables_dropped(app: tuple[Service, TestClient]) -> None:
    service, client = app
    with service.engine.begin() as conn:
        existing = sa.MetaData()
        existing.reflect(conn)
        existing.drop_all(conn)
    response = client.get("/readyz")
    assert response.status_code == 503
    assert "responder db upgrade" in response.json()["reason"]
    assert client.get("/healthz").status_code == 200


def test_readyz_when_the_database_cannot_be_reached() -> None:
    service = build_service(settings_for(UNREACHABLE))
    service.worker_thread = False
    try:
        with TestClient(service.app) as client:
            response = client.get("/readyz")
            assert response.status_code == 503
            assert response.json()["status"] == "unavailable"
            assert response.json()["reason"].startswith("database unreachable")
            assert client.get("/healthz").status_code == 200
    finally:
        service.engine.dispose()


def test_metrics_count_webhook_outcomes_and_batches(
    app: tuple[Service, TestClient], samples_dir: Path
) -> None:
    _, client = app
    response = client.get("/metrics")
    assert response.status_code == 200
    assert response.headers["content-type"].startswith("text/plain")
    assert not any(samples(client, "responder_webhook_events_total").values())

    body = sample(samples_dir, "payment-failure-rate.triggered")
    assert post(client, body).status_code == 202
    assert post(client, body).status_code == 200  # the same delivery again
    assert client.post("/webhooks/datadog", json=body).status_code == 401  # no token
    assert post(client, "[1, 2]").status_code == 422

    counted = samples(client, "responder_webhook_events_total")
    assert {labels: value for labels, value in counted.items() if value} == {
        (("outcome", "accepted"),): 1.0,
        (("outcome", "duplicate"),): 1.0,
        (("outcome", "rejected_auth"),): 1.0,
        (("outcome", "rejected_payload"),): 1.0,
    }
    # Sent one after the other, each stored delivery was a batch of its own; the rejected
    # ones never reached the writer.
    assert samples(client, "responder_intake_batch_size_count") == {(): 2.0}
    assert samples(client, "responder_intake_batch_size_sum") == {(): 2.0}
    buckets = samples(client, "responder_intake_batch_size_bucket")
    assert buckets[(("le", "1.0"),)] == 2.0


def test_metrics_queue_depth_after_the_worker_stepped(
    app: tuple[Service, TestClient], samples_dir: Path
) -> None:
    service, client = app
    assert post(client, sample(samples_dir, "fraud-detection-down.triggered")).status_code == 202
    assert samples(client, "responder_queue_depth") == {}  # the worker has not run yet
    drain(service)
    depth = samples(client, "responder_queue_depth")
    assert set(depth) == {
        (("queue", "events"),),
        (("queue", "runs_pending"),),
        (("queue", "runs_running"),),
    }
    # The event was processed in the same round, before the gauges were read.
    assert depth[(("queue", "events"),)] == 0.0
    assert samples(client, "responder_events_processed_total") == {(("result", "processed"),): 1.0}
    runs = samples(client, "responder_action_runs_total")
    assert runs == {
        (("action", "slack.post"), ("state", "skipped")): 1.0,
        (("action", "pagerduty.trigger"), ("state", "skipped")): 1.0,
        (("action", "datadog.incident"), ("state", "skipped")): 1.0,
    }


def test_thread_cpu_is_told_by_role() -> None:
    """`responder_thread_cpu_seconds_total` puts each live thread's CPU under its role: the
    benchmark reads intake and processing cost per alert from it."""
    import threading
    import time

    def burn(done: threading.Event) -> None:
        until = time.thread_time() + 0.2
        while time.thread_time() < until:
            pass
        done.wait(10)  # alive while scraped: an ended thread's time goes with it

    metrics = Metrics()
    done = threading.Event()
    worker = threading.Thread(target=burn, args=(done,), name="worker")
    worker.start()
    try:
        while worker.is_alive() and _cpu(metrics, "pipeline") < 0.15:
            time.sleep(0.01)
        pipeline, other = _cpu(metrics, "pipeline"), _cpu(metrics, "other")
    finally:
        done.set()
        worker.join()
    assert pipeline >= 0.15
    assert other < 0.15  # not counted twice
    assert _cpu(metrics, "intake") > 0  # this test's own thread is the main one


def _cpu(metrics: Metrics, role: str) -> float:
    value = metrics.registry.get_sample_value("responder_thread_cpu_seconds_total", {"role": role})
    assert value is not None
    return float(value)
