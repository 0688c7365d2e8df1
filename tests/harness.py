"""Builds a real service for tests: a real database, real playbooks, the Slack fake."""

from __future__ import annotations

import json
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from starlette.testclient import TestClient

from responder.main import Service, build_service
from responder.pipeline.timers import TimerSweep
from responder.settings import Settings
from responder.store.migrate import upgrade

REPO = Path(__file__).resolve().parents[1]
TOKEN = "hook-secret-token-1"
API_TOKEN = "api-secret-token-1"
SLACK_TOKEN = "xoxb-test-token-42"


def settings_for(db_url: str, playbooks: Path | None = None, **extra: Any) -> Settings:
    values: dict[str, Any] = {
        "DATABASE_URL": db_url,
        "RESPONDER_PLAYBOOKS": str(playbooks or REPO / "playbooks"),
        "RESPONDER_WEBHOOK_TOKEN": f"old-token-0,{TOKEN}",
        "RESPONDER_API_TOKEN": API_TOKEN,
        "RESPONDER_POLL_SECONDS": "0.05",
    }
    values.update(extra)
    return Settings(**values)


@contextmanager
def running(
    settings: Settings, *, worker_thread: bool = False
) -> Iterator[tuple[Service, TestClient]]:
    """The app with its lifespan started; the test steps the worker unless `worker_thread`."""
    service = build_service(settings)
    service.worker_thread = worker_thread
    service.watch_thread = worker_thread  # a stepped test reloads its playbooks itself
    upgrade(service.engine)
    with TestClient(service.app) as client:
        yield service, client
    if service.worker is not None:
        service.worker.stop()
    service.engine.dispose()


def drain(service: Service) -> None:
    assert service.worker is not None
    assert service.worker.drain(timeout=30), "the pipeline did not settle in 30 s"


def sample(samples_dir: Path, name: str) -> dict[str, Any]:
    data: dict[str, Any] = json.loads((samples_dir / f"{name}.json").read_text())
    return data


def post(client: TestClient, body: Any, **headers: str) -> Any:
    hdrs = {"X-Responder-Token": TOKEN, **headers}
    if isinstance(body, bytes | str):
        return client.post("/webhooks/datadog", content=body, headers=hdrs)
    return client.post("/webhooks/datadog", json=body, headers=hdrs)


def intake_row(fingerprint: str, source_id: str) -> dict[str, Any]:
    """A minimal alert_event row, as the webhook hands it to the intake writer."""
    return {
        "fingerprint": fingerprint,
        "source_id": source_id,
        "monitor_id": "1",
        "title": "t",
        "transition": "Triggered",
        "priority": None,
        "scope": "",
        "cycle_key": None,
        "template": "responder",
        "payload": "{}",
        "alert": None,
        "received_at": datetime.now(UTC),
        "state": "received",
        "deliveries": 1,
        "attempts": 0,
        "part": 0,
    }


def sweep(service: Service, now: datetime) -> int:
    """One timer sweep as of `now`, as any worker of the service would run it."""
    return TimerSweep(service.engine, service.deal).sweep(now)
